"""Waiting on DBOS workflows: the shared per-process waiter, its completion feeds and its probe statement."""
