UPDATE logs SET level = 'x'
