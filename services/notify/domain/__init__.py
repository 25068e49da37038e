"""Notify's rules, pure: who is told what (`plans`), in which words (`letters`), as what message
(`mime`, `itip`), and what a send's outcome means for the next try (`delivery`)."""
