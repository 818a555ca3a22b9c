"""Offline encoders of item modalities: text (all-MiniLM-L6-v2) and images (EfficientNet-lite0).

Both load their weights from installed packages, never from the network, and cache their
outputs by content hash (``cache.FeatureCache``) so a re-run costs nothing.
"""
