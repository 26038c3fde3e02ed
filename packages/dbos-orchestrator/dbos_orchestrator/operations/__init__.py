"""Operations on what a DBOS system database holds besides workflows: queues, schedules,
application versions, retention, and the check before an enqueue (one module per concept; both
front ends call them)."""
