"""Data for machine learning: uniform float32 values and vectors (uniform), typed numpy
tensors (tensor: imports numpy, so dgen_py loads it on first use) and the rolling
BufferPool of small objects (buffer_pool)."""
