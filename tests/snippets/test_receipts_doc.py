"""docs/receipts.md leads with the forwarded receipt, links the five snippets, and shows the tested one."""

import re

from tests.snippets.runtimes import SNIPPET_LIST, SNIPPETS
from tests.support import ROOT

DOC = (ROOT / "docs" / "receipts.md").read_text(encoding="utf-8")


def test_the_receipts_doc_leads_with_the_forwarded_receipt_and_links_each_snippet():
    headings = re.findall(r"^## (.+)$", DOC, flags=re.MULTILINE)
    linked = set(re.findall(r"\]\(snippets/([\w.]+)\)", DOC))

    assert headings[0].startswith("Forwarded receipts")
    assert {snippet.file for snippet in SNIPPET_LIST} <= linked
    assert all((SNIPPETS / name).is_file() for name in linked)


def test_the_python_snippet_shown_in_the_doc_is_the_tested_one():
    [shown] = re.findall(r"```python\n(def forward_ping_receipt.*?)```", DOC, flags=re.DOTALL)
    source = (SNIPPETS / "forward_receipt.py").read_text(encoding="utf-8")
    function = source[source.index("def forward_ping_receipt") :]

    assert shown == re.sub(r"  # noqa: S310[^\n]*", "", function)
