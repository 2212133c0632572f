"""The per-process serving path: input parsing, routing tables, loaded models, prediction."""
