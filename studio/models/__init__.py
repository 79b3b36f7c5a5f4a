"""Model catalog (bundled default, Hub ids, local folders), loading and hardware detection."""
