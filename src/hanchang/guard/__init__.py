"""Korean personal-data guard: recognizers, masking/pseudonymization, output link filter."""
