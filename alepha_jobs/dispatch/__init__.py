"""Dispatchers hand ``(job_name, execution_id)`` pairs to whoever runs them."""
