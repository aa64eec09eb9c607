"""vidconv_edge.stream"""
