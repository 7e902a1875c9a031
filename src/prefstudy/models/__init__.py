"""Base models: the built-in ones (embedded SmolLM2, tiny random Mistral), loading, and 4-bit quantization."""
