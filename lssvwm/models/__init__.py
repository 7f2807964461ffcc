"""World models assembled from `lssvwm.nn`: LSSVWM, causal transformers, Mamba-2 variants."""
