"""Every output format of qr-eval: terminal tables, Markdown, CSV, HTML and plots. Figures are
formatted in ``formats`` alone, and Markdown and HTML lay out the one view of ``table``."""
