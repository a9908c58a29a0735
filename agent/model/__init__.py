"""The embedded model: MiniLM as a prefix LM (network.py), its tokens and text (text.py), its compact prompt
(prompt.py) and its grammar-constrained decoding (decode.py)."""
