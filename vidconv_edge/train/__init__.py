"""vidconv_edge.train"""
