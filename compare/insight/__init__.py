"""Seeing inside the twins: the first layer's neurons as images, dead and saturated units, the
gradient of every layer over training, and the mistakes; the same pictures from both twins."""
