"""The single window (싱글-원-윈도우): server-rendered pages and a small local front end."""
