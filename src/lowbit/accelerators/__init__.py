"""lowbit.accelerators"""
