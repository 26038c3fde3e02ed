"""Waiting on DBOS workflows: the shared per-process waiter and the trigger-event contract.

Neither module imports Airflow: they are what a triggerer (or another front end) builds on.
"""
