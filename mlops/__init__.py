"""The platform: settings, CLI and the lifecycle stages that flows orchestrate."""
