"""The broker side: RabbitMQ topology, the Celery configuration, the chain publisher, and trial
mode's filesystem:// transport."""
