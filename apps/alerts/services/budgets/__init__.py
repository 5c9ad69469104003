"""Budgets: defining them (``manage``), measuring them from rollups, invoices and the credit
ledger (``measures``), and evaluating their thresholds every few minutes (``evaluate``)."""
