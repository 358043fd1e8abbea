"""``make cluster-chaos``: orders streaming in while broker nodes of a cluster are lost."""
