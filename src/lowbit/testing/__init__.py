"""lowbit.testing"""
