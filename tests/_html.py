"""The tags (with attributes) and text of an HTML page, for the storyboard tests."""

from __future__ import annotations

from html.parser import HTMLParser


class PageParts(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse_page(page: str) -> PageParts:
    parts = PageParts()
    parts.feed(page)
    return parts
