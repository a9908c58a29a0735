"""The conversation curriculum: typed intents sampled from a world, rendered in many phrasings, planned and
answered by the expert policy. Training reads its train families; evals read its held-out families."""
