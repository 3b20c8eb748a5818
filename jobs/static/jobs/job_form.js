/* The job form shows only the chosen target type's fields. Without this script every type's
   fields are shown and the server reads only the chosen type's (jobs/admin_forms.py). */
'use strict';
{
    function showChosenType(select) {
        for (const fieldset of document.querySelectorAll('fieldset.target-fields')) {
            // Hidden fieldsets leave the tab order and the accessibility tree too.
            fieldset.hidden = !fieldset.classList.contains('target-' + select.value);
        }
    }

    window.addEventListener('load', function() {
        const select = document.getElementById('id_target_type');
        if (!select || select.tagName !== 'SELECT') {
            return;  // read-only (a job declared in code): nothing to switch
        }
        showChosenType(select);
        select.addEventListener('change', function() { showChosenType(select); });
    });
}
