"""Item features: frozen CLIP image/text and MiniLM text encoders, extraction, and the sidecar store."""
