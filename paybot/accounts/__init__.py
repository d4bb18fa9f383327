"""Customer accounts: the flat-file import billers on legacy systems use, and the directory
(local database or an HTTP CRM) the bot looks callers up in."""

from paybot.accounts.csv_import import ImportReport, RowError, cli_import, import_accounts
from paybot.accounts.directory import (
    AccountRecord,
    CustomerDirectory,
    DirectoryError,
    DirectoryUnavailable,
    HttpDirectory,
    LocalDirectory,
    make_directory,
)

__all__ = [
    "AccountRecord",
    "CustomerDirectory",
    "DirectoryError",
    "DirectoryUnavailable",
    "HttpDirectory",
    "ImportReport",
    "LocalDirectory",
    "RowError",
    "cli_import",
    "import_accounts",
    "make_directory",
]
