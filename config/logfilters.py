"""Logging filters referenced from the settings (no Django imports: logging is configured
before the apps load)."""

import logging


class WithoutFontSubsetNotice(logging.Filter):
    """Drops WeasyPrint's notice, repeated for every PDF, that it subsets fonts with fontTools
    because the system has no HarfBuzz-Subset: the PDFs are the same either way."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Using fontTools instead of HarfBuzz-Subset")
