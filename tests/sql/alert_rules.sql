-- Every rule of every SLO, with its factor and windows.
SELECT slo, rule, severity, action, factor, long_window, short_window FROM alerts ORDER BY slo, factor DESC
