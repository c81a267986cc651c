"""Traffic capture and feedback: capture policies, captured requests, labels, frozen datasets."""
