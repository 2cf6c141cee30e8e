"""What DNS says: the qname grammar, the records each owner contributes, and the index of names."""
