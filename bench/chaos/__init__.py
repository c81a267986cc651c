"""`just chaos`: the platform on network namespaces (hosts on one machine) and their faults."""
