"""The web service's pure rules: sessions, languages, paths, navigation, words for codes."""
