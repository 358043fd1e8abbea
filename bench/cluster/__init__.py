"""A local three-node RabbitMQ cluster: start, stop, kill -9 and restart its nodes, find leaders."""
