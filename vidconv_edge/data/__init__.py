"""vidconv_edge.data"""
