"""Customer accounts: the flat-file import billers on legacy systems use (``csv_import``:
``csv_file`` and ``csv_rows`` read, ``upsert`` writes), the directory the bot looks callers up in
(``directory``: the local database, or an HTTP CRM in ``crm``), and their stored payment
methods (``methods``)."""
