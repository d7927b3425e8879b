"""lowbit.torch"""
