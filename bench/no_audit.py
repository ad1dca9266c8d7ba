"""The service with its audit trail off: the benchmark's baseline for what auditing costs.

Only `make bench` uses it; the service itself has no setting to turn auditing off.
"""

from app.app import create_app

app = create_app()
app.state.audit_enabled = False
