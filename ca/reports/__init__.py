"""Reports the CA makes and publishes (seed 004 5.2.1 (1), 9.3.3): the monthly provision status report."""
