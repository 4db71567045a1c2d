"""Where the advice comes from: the papers and architectures the rules cite."""

LI_2019 = ("Li, Chen, Hu, Yang: Understanding the Disharmony between Dropout and Batch "
           "Normalization by Variance Shift, CVPR 2019")
VASWANI_2017 = ("Vaswani et al.: Attention Is All You Need, NeurIPS 2017, Sec. 5.4 "
                "(residual dropout on each sub-layer output before the add; dropout on the sums "
                "of embeddings and positional encodings; P_drop = 0.1)")
ZAGORUYKO_2016 = ("Zagoruyko, Komodakis: Wide Residual Networks, BMVC 2016 (dropout between "
                  "the convolutions inside the residual block)")
SRIVASTAVA_2014 = ("Srivastava et al.: Dropout: A Simple Way to Prevent Neural Networks from "
                   "Overfitting, JMLR 2014")
TOMPSON_2015 = ("Tompson et al.: Efficient Object Localization Using Convolutional Networks, "
                "CVPR 2015 (SpatialDropout, torch.nn.Dropout2d)")
GAL_2016 = ("Gal, Ghahramani: Dropout as a Bayesian Approximation: Representing Model "
            "Uncertainty in Deep Learning, ICML 2016")
KRIZHEVSKY_2012 = ("Krizhevsky et al.: ImageNet Classification with Deep Convolutional Neural "
                   "Networks, NeurIPS 2012; Simonyan, Zisserman: Very Deep Convolutional "
                   "Networks, ICLR 2015 (dropout in the fully connected head, before the last "
                   "layer)")
BERT_GPT2 = ("Devlin et al.: BERT, NAACL 2019 (embeddings: sum, LayerNorm, dropout 0.1); "
             "Radford et al.: GPT-2, 2019 (Hugging Face GPT2Config.embd_pdrop = 0.1 on the sum "
             "of token and position embeddings)")
