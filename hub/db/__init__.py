"""The database side: engine and sessions, models, migrations, and the stores on top of them."""
