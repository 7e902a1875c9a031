"""One trial's training (the only package that imports TRL): tokenization, reference cache, log-probs, trainer."""
