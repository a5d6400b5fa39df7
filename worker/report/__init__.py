"""The post-incident review as a page and as pictures: `runbook report --format html`."""
