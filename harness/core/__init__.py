"""The bottom layer, torch-free: errors, units, text safety, the case spec, statistics, the
result schema, why a value is missing and the typed validity signals. Every other package may
import it; it imports nothing of the harness above it."""
