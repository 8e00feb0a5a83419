"""The domain: events, routes, planning, the trigger pipeline and the recipients sync."""
