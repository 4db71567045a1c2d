"""The claims lab: one module per common claim about dropout, each returning measured findings."""
