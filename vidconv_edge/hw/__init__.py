"""vidconv_edge.hw"""
