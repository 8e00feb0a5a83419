"""The operator CLI, `trigger-relay`: works on the running local stack or a deployed one."""
