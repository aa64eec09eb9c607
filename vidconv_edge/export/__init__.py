"""vidconv_edge.export"""
