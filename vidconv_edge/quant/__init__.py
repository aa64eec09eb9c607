"""vidconv_edge.quant"""
