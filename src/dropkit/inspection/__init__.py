"""Model inspection shared by `dropkit.mc` and `dropkit.diagnose`.

One home for each question both ask about a user's model:

* `registry`: what counts as dropout (modules and functions, stochastic depth included);
* `source`: what a module class's own code does with its ``training`` flag;
* `discover`: where the dropout of a model is and which flags switch it (`find_dropout`);
* `tracker`: which dropout actually fired in a forward pass (the runtime check of `discover`);
* `tracer`: the one ``torch.fx`` tracer;
* `borrow`: borrowing a model (type check, flags restored, random state forked).
"""
