"""The QA review page: go through misclassified samples, see which words drove each score,
confirm or correct labels into the feedback store (`helpdesk-scorer review REPORT_DIR`)."""

from __future__ import annotations

from evaluation.review.app import create_review_app
from evaluation.review.settings import ReviewSettings

__all__ = ["ReviewSettings", "create_review_app"]
