"""Choosing two attempts per test input (the vote), the submission format and scoring."""
