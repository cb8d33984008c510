"""Deploy rehearsal: template.yaml translated as CloudFormation would, and created in the emulator."""
